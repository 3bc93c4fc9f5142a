"""omha's builtin plugins, registered through the same path as installed ones (see ``plugins.py``)."""
