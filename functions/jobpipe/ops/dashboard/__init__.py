"""The operator's dashboard: every owner's jobs, a job's detail, cancel, and the DLQ with replay.

It reads the jobs table and the queues with the operator's own AWS credentials, like `jobpipe dlq`;
it is never a route of the deployed API. `make local` serves it at `/ui`; `jobpipe ui --stack NAME`
serves it on localhost for a deployed stack. See `jobpipe.ops.dashboard.app`.
"""
