"""Block names: ``stage{s}_block{b}``, made by the plan and read back by the tables, the
feature extractor, the torchvision mapping and the experiments (the one home of the pattern).

Example:
>>> block_name(2, 1)
'stage2_block1'
>>> parse_block_name("stage2_block1"), parse_block_name("stem_conv")
((2, 1), None)
"""

import re

_BLOCK_NAME = re.compile(r"stage(\d+)_block(\d+)")


def block_name(stage, index):
    """The name of block ``index`` of stage ``stage`` (both from 1)."""
    return f"stage{stage}_block{index}"


def parse_block_name(name):
    """``(stage, index)`` of a block's name, or None for any other name."""
    match = _BLOCK_NAME.fullmatch(name)
    return (int(match.group(1)), int(match.group(2))) if match else None
