"""The example pictures and scripts; the pictures ship inside the package for ``multistyle serve``."""
