"""Entry point of the Space: build the Blocks from trainer_space and launch it."""

import os

# before anything imports huggingface_hub (gradio does): calls made without token= must never send the machine's
# own token (HF_TOKEN or a saved login). trainer_space/__init__.py sets it too.
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"

from trainer_space.ui import build_app, launch_options, queue_options

demo = build_app()

if __name__ == "__main__":
    demo.queue(**queue_options()).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_options(),
    )
