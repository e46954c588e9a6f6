"""jobpipe: a serverless background-job pipeline on API Gateway, SQS, Lambda and DynamoDB."""

__version__ = "0.1.0"
