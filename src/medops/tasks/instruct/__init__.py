"""``task: instruct``: a chat model fine-tuned on the user's own instruction or chat data."""
