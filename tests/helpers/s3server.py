"""An S3-compatible server for tests: moto's server app on 127.0.0.1, a free port, in a background thread.

moto checks `If-None-Match: *` and then stores the object in two steps, so two requests racing on one key
could both succeed, which real S3 never allows (a conditional put is atomic there). The app is therefore
wrapped so that the server handles one request at a time: the store's conditional create is tested against
S3's semantics, not against a race inside the fake.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

ACCESS_KEY = "nemotron-test-access"
SECRET_KEY = "nemotron-test-secret"
REGION = "us-east-1"


@contextmanager
def moto_s3(*buckets: str) -> Iterator[str]:
    """Run the server, create `buckets`, yield its endpoint URL (http://127.0.0.1:PORT)."""
    import boto3
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", 0, one_at_a_time, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.shutdown()
        thread.join(timeout=10)


def s3_env(endpoint: str, credentials: bool = True) -> dict[str, str]:
    """Environment variables that point boto3/s3fs at the test server (with or without credentials)."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-role lookup: a missing credential fails at once
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
    }
    if credentials:
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    return env
