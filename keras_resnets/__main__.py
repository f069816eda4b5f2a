"""``python -m keras_resnets``: the command line of `keras_resnets.cli`."""

import sys

from keras_resnets.cli import main

if __name__ == "__main__":
    sys.exit(main())
