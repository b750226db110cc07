"""One module per ``fcn-perception`` command: its arguments (``add_arguments``) and its run (``run``)."""
