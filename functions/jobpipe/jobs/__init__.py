"""Your job types. Add a module here and import it below; delete the examples when you ship."""

from jobpipe.jobs import examples as examples
