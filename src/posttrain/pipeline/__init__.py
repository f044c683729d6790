"""The end-to-end recipe runner: `posttrain run`."""
