"""The `posttrain` command: one thin sub-command per stage of the loop, each a wrapper over the library."""
