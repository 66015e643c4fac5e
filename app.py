"""Entry point of the Space: build the Blocks from trainer_space and launch it."""

import os

from trainer_space.ui import build_app, launch_options

demo = build_app()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=8).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_options(),
    )
