"""resilient_aws: keep botocore/boto3 clients working when AWS itself breaks."""
