"""The CDK app that deploys jobpipe: one construct per concern (`components/`), composed by a
thin stack (`stack.py`), built from `jobpipe.topology.TOPOLOGY`."""
