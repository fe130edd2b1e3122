"""AWS Secrets Manager and SSM Parameter Store provider, compatible with
aws/secrets-store-csi-driver-provider-aws SecretProviderClasses (``provider: aws``).

Imported only when a SecretProviderClass names ``aws`` (the registry's factory imports it), so
a node without AWS volumes never loads botocore.
"""

from agent.providers.aws.provider import AwsProvider

__all__ = ["AwsProvider"]
