"""Which errors are retried, count against the breaker, or move region."""

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from resilient_aws import CircuitOpenError
from resilient_aws.classify import THROTTLING_ERROR_CODES, TRANSIENT_ERROR_CODES, classify


def client_error(code: str, status: int, headers: dict | None = None) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}}, "GetItem")


def _botocore_standard_mode_says(code: str, status: int) -> tuple[bool, bool]:
    """(transient?, throttled?) as botocore's own standard-mode checkers judge this response."""
    from types import SimpleNamespace

    from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

    context = RetryContext(attempt_number=1, http_response=SimpleNamespace(status_code=status),
                           parsed_response={"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}})
    transient = TransientRetryableChecker().is_retryable(context)
    return bool(transient), bool(ThrottledRetryableChecker().is_retryable(context))


CALLER_CODES = ["ValidationException", "ConditionalCheckFailedException", "AccessDeniedException",
                "ResourceNotFoundException", "SerializationException"]


@pytest.mark.parametrize("code", sorted(TRANSIENT_ERROR_CODES | THROTTLING_ERROR_CODES) + CALLER_CODES)
def test_retry_and_throttle_verdicts_agree_with_botocore_standard_mode(code):
    transient, throttled = _botocore_standard_mode_says(code, 400)
    v = classify(client_error(code, 400))
    assert v.throttle == throttled
    assert v.retryable == (transient or throttled)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_transient_5xx_is_retried_counted_and_may_fail_over(status):
    v = classify(client_error("ServiceUnavailable", status))
    assert (v.retryable, v.endpoint_failure, v.may_fail_over, v.throttle) == (True, True, True, False)


def test_non_transient_5xx_is_not_retried_but_marks_the_endpoint_unhealthy():
    v = classify(client_error("NotImplemented", 501))
    assert (v.retryable, v.endpoint_failure, v.may_fail_over) == (False, True, True)


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_connection_failures_are_retried_counted_and_may_fail_over(exc):
    v = classify(exc)
    assert (v.retryable, v.endpoint_failure, v.may_fail_over) == (True, True, True)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_is_retried_but_neither_trips_the_breaker_nor_moves_region(code):
    v = classify(client_error(code, 400))
    assert (v.retryable, v.throttle, v.endpoint_failure, v.may_fail_over) == (True, True, False, False)


def test_http_429_is_throttling():
    assert classify(client_error("Whatever", 429)).throttle


@pytest.mark.parametrize(
    "code", ["ValidationException", "ConditionalCheckFailedException", "AccessDeniedException",
             "ResourceNotFoundException"])
def test_caller_errors_are_never_retried_counted_or_moved(code):
    v = classify(client_error(code, 400))
    assert v.caller_error
    assert not (v.retryable or v.endpoint_failure or v.may_fail_over)


@pytest.mark.parametrize(
    "exc",
    [ParamValidationError(report="bad"), NoCredentialsError(),
     CircuitOpenError(service="dynamodb", operation="GetItem", regions=["us-east-1"]), ValueError("bug")],
)
def test_local_errors_are_caller_errors(exc):
    assert classify(exc).caller_error


def test_retry_after_header_is_read_in_milliseconds():
    v = classify(client_error("ThrottlingException", 400, {"x-amz-retry-after": "1500"}))
    assert v.retry_after == 1.5


def test_malformed_retry_after_header_is_ignored():
    assert classify(client_error("ThrottlingException", 400, {"x-amz-retry-after": "soon"})).retry_after is None


def test_circuit_open_error_is_a_botocore_error():
    from botocore.exceptions import BotoCoreError

    err = CircuitOpenError(service="dynamodb", operation="GetItem", regions=["us-east-1", "us-west-2"])
    assert isinstance(err, BotoCoreError)
    assert "us-east-1, us-west-2" in str(err)
