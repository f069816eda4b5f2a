"""``python -m keras_resnets``: the command line of `keras_resnets.cli`.

``kill -USR1 <pid>`` makes a running command write every thread's Python stack to its
standard error (an explorer worker's log), and go on: where a run that seems stuck is.
"""

import faulthandler
import signal
import sys

from keras_resnets.cli import main

if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sys.exit(main())
