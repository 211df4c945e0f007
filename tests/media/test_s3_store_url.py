"""`image_store_url` and `image_public_base_url`: what is accepted, and that credentials in the
URL are refused without the error ever repeating them."""

from __future__ import annotations

import pytest

from adapter.config import ConfigError, Settings, load_settings
from adapter.media.s3_store import S3Location, parse_s3_url

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def test_bucket_prefix_and_query() -> None:
    loc = parse_s3_url("s3://my-bucket/a/b/c?endpoint_url=http://127.0.0.1:9000/&region=eu-west-1")
    assert loc == S3Location(bucket="my-bucket", prefix="a/b/c", endpoint_url="http://127.0.0.1:9000", region="eu-west-1")
    assert parse_s3_url("s3://my-bucket") == S3Location(bucket="my-bucket")
    assert parse_s3_url("s3://my-bucket/").prefix == ""
    assert parse_s3_url("s3://my-bucket//x//y/").prefix == "x/y"


@pytest.mark.parametrize(
    "url",
    [
        f"s3://AKIAEXAMPLE:{SECRET}@my-bucket/p",
        f"s3://{SECRET}@my-bucket/p",
        f"s3://my-bucket/p?aws_secret_access_key={SECRET}",
        f"s3://my-bucket/p?access_key_id=AKIA&secret={SECRET}",
        f"s3://my-bucket/p?session_token={SECRET}",
        f"s3://my-bucket/p?endpoint_url=http://AKIA:{SECRET}@127.0.0.1:9000",
    ],
)
def test_credentials_in_the_url_are_refused_without_echo(url: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_s3_url(url)
    assert "credentials" in str(info.value) and "AWS_ACCESS_KEY_ID" in str(info.value)
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as cfg:
        load_settings(env={"MJ_ADAPTER_IMAGE_STORE_URL": url})
    assert SECRET not in str(cfg.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://my-bucket/p",
        "file:///tmp/images",
        "s3:///p",
        "s3://my-bucket/../up",
        "s3://my-bucket/p?endpoint_url=ftp://host",
        "s3://my-bucket/p?endpoint_url=",
        f"s3://my-bucket/p?{SECRET}=1",  # unknown parameter: not echoed either
    ],
)
def test_other_bad_urls(url: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_s3_url(url)
    assert SECRET not in str(info.value)


def test_settings_from_env() -> None:
    s = load_settings(env={})
    assert s.image_store_url is None and s.image_public_base_url is None and s.image_base_url() is None
    s = load_settings(
        env={
            "MJ_ADAPTER_IMAGE_STORE_URL": " s3://b-1/p?region=us-east-1 ",
            "MJ_ADAPTER_IMAGE_PUBLIC_BASE_URL": "https://cdn.example.com/mj/",
            "MJ_ADAPTER_PUBLIC_BASE_URL": "https://api.example.com",
        }
    )
    assert s.image_store_url == "s3://b-1/p?region=us-east-1"
    assert s.image_public_base_url == "https://cdn.example.com/mj"
    assert s.image_base_url() == "https://cdn.example.com/mj"  # images: the CDN, not the API host
    assert load_settings(env={"MJ_ADAPTER_PUBLIC_BASE_URL": "https://api.example.com/"}).image_base_url() == "https://api.example.com"
    assert load_settings(env={"MJ_ADAPTER_IMAGE_STORE_URL": "  "}).image_store_url is None
    with pytest.raises(ConfigError, match="image_public_base_url"):
        load_settings(env={"MJ_ADAPTER_IMAGE_PUBLIC_BASE_URL": "cdn.example.com"})


def test_webhooks_use_the_same_image_base() -> None:
    from adapter.api.mjproxy.hooks import webhook_base

    assert webhook_base(Settings(image_public_base_url="https://cdn.example.com", public_base_url="https://api.example.com")) == "https://cdn.example.com"
    assert webhook_base(Settings(public_base_url="https://api.example.com/")) == "https://api.example.com"
    assert webhook_base(Settings(port=9999)) == "http://127.0.0.1:9999"
