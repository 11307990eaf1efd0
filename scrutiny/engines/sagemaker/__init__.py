"""Amazon SageMaker endpoints (boto3 is an optional extra: ``pip install 'scrutiny[sagemaker]'``)."""
