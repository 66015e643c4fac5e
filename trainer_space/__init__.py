"""TRL Trainer Space.

Importing the package makes implicit tokens impossible in this process, before anything imports huggingface_hub:
with `HF_HUB_DISABLE_IMPLICIT_TOKEN=1`, a call made without `token=` (transformers and datasets make such calls)
sends no token at all, never the machine's own (`HF_TOKEN` or a saved login). Every call of the app passes the
visitor's token, or `token=False`, explicitly as well.
"""

import os
import sys

os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
if "huggingface_hub.constants" in sys.modules:  # imported before us: its constant was read already
    sys.modules["huggingface_hub.constants"].HF_HUB_DISABLE_IMPLICIT_TOKEN = True
