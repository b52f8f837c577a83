"""Small AWS clients for the Lambda cold path: the standard library and ``botocore.exceptions`` only.

* ``sigv4``: Signature Version 4, sans-I/O (any service: ``dynamodb``, ``execute-api``...).
* ``credentials``: the environment (what Lambda sets), else botocore's chain, imported lazily.
* ``dynamodb``: ``DynamoDBClient``, boto3's low-level DynamoDB client for the calls callkit makes.
* ``_transport``: what every client shares: keep-alive connections, retries, backoff, errors.

Nothing is imported here, so ``import callkit.aws.sigv4`` pays for SigV4 alone.
"""
