"""Push devices as SNS platform endpoints (APNs, FCM)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from nudge.adapters.aws import client
from nudge.domain.errors import ValidationFailedError


class SnsDevices:
    def __init__(self, *, apns_arn: str, fcm_arn: str) -> None:
        self.apps = {"apns": apns_arn, "fcm": fcm_arn}

    def register(self, user_id: str, platform: str, token: str) -> str:
        app_arn = self.apps.get(platform)
        if not app_arn:
            raise ValidationFailedError(f"no {platform} platform application is configured")
        try:
            resp = client("sns").create_platform_endpoint(
                PlatformApplicationArn=app_arn, Token=token, CustomUserData=user_id[:2000]
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "InvalidParameter":
                raise ValidationFailedError(
                    err.response["Error"].get("Message", "invalid token")
                ) from err
            raise
        return str(resp["EndpointArn"])

    def delete(self, endpoint_arn: str) -> None:
        try:
            client("sns").delete_endpoint(EndpointArn=endpoint_arn)
        except ClientError as err:
            if err.response["Error"]["Code"] != "NotFound":
                raise
