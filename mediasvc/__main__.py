import sys

from mediasvc.cli import main

sys.exit(main())
