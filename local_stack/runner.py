"""Starts and stops every part of the local pipeline in one process tree.

moto server (S3, SQS, DynamoDB, SNS; subprocess) -> resources from template.yaml -> model server (subprocess) -> local
SageMaker async endpoint -> event pumps -> the API. The API starts last, so once GET /health answers,
every part is up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import uvicorn

from local_stack.provision import Stack, provision
from local_stack.pumps import Poller, PumpStats, Scheduler, pump_specs, schedule_specs, start_pumps, start_schedules
from local_stack.sagemaker import EndpointConfig, create_endpoint_app

REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@dataclass
class Options:
    host: str = "127.0.0.1"
    api_port: int = 8000
    state_dir: Path = field(default_factory=lambda: REPO / ".local")
    parameters: dict[str, str] = field(default_factory=dict)  # template parameter overrides
    visibility_timeout: int | None = None
    batching_window: float | None = None
    pollers_per_function: int = 2
    schedule_interval: float = 10.0  # seconds between runs of scheduled functions (the sweeper)
    endpoint_instances: int = 1  # instances the local endpoint runs (and reports to DescribeEndpoint)
    verbose: bool = False


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in each child (moto, the model server): the kernel sends it SIGTERM if this process dies, so no orphans."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def clear_product_caches() -> None:
    """Forget the product's cached settings, clients, keys and limits, so that a second stack in one process (a
    benchmark's modes, the tests' moto) is not reached through the first one's."""
    from inference_core.dal.clients import reset_clients
    from inference_core.logic import limits
    from inference_core.logic.auth import clear_key_cache
    from inference_core.settings import get_settings

    get_settings.cache_clear()
    reset_clients()
    clear_key_cache()
    limits.clear_cache()


def _wait_until_up(child: subprocess.Popen[bytes] | None, url: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"{name} exited during startup (run with --verbose to see why)")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer {url} in time")


class _ThreadedUvicorn:
    def __init__(self, app: Any, host: str, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    def start(self, timeout: float = 30) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.server.config.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class LocalStack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.stop_event = threading.Event()
        self.urls: dict[str, str] = {}
        self.stack: Stack | None = None
        self.pump_stats: dict[str, PumpStats] = {}
        self._moto: subprocess.Popen[bytes] | None = None
        self._model: subprocess.Popen[bytes] | None = None
        self._servers: list[_ThreadedUvicorn] = []
        self._pollers: list[Poller] = []
        self._schedulers: list[Scheduler] = []
        self.startup_seconds = 0.0

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.urls["aws"])

    def start(self) -> None:
        started = time.monotonic()
        host = self.options.host
        for name, value in FAKE_CREDENTIALS.items():
            os.environ.setdefault(name, value)
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = REGION

        moto_port, sagemaker_port, model_port = free_port(host), free_port(host), free_port(host)
        self._start_moto(host, moto_port)
        self._start_model_server(host, model_port)
        self._wait_for_moto(timeout=60)

        self.stack = provision(
            self.client, self.options.parameters, region=REGION, visibility_timeout=self.options.visibility_timeout
        )
        self._wait_for_model(timeout=180)

        endpoint = self._endpoint_config()
        app = create_endpoint_app(endpoint, self.client("s3"), self.client("sns"))
        self._serve(app, host, sagemaker_port)
        self.urls["sagemaker"] = f"http://{host}:{sagemaker_port}"

        # The same settings the functions get in Lambda, plus the local endpoint overrides.
        os.environ.update(self.stack.env)
        os.environ["AWS_ENDPOINT_URL"] = self.urls["aws"]
        os.environ["SAGEMAKER_RUNTIME_ENDPOINT_URL"] = self.urls["sagemaker"]
        # Local only (the template cannot set it): webhooks may go to plain-http receivers on loopback.
        os.environ["ALLOW_LOOPBACK_WEBHOOKS"] = "true"
        if not self.options.verbose:
            os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        clear_product_caches()

        specs = pump_specs(self.stack.resolver, self.options.batching_window)
        self._pollers, self.pump_stats = start_pumps(
            specs, self.client("sqs"), self.stop_event, self.options.pollers_per_function
        )
        schedules = schedule_specs(self.stack.resolver, self.options.schedule_interval)
        self._schedulers, schedule_stats = start_schedules(schedules, self.stop_event)
        self.pump_stats.update(schedule_stats)

        from inference_api.app import create_app  # only after the environment is set
        from inference_core.logic.auth import create_api_key

        api_key, _ = create_api_key("local-dev", "make run")
        self._serve(create_app(), host, self.options.api_port)
        self.urls["api"] = f"http://{host}:{self.options.api_port}"
        self._write_state(api_key)
        self.startup_seconds = time.monotonic() - started

    @contextlib.contextmanager
    def event_sources_disabled(self, function: str) -> Iterator[None]:
        """While inside, `function` takes no SQS messages (its event source mappings disabled, as
        `aws lambda update-event-source-mapping --no-enabled` does); batches already taken finish."""
        switches = [poller.disabled for poller in self._pollers if poller.spec.function == function]
        if not switches:
            raise ValueError(f"{function} has no SQS event source")
        for switch in switches:
            switch.set()
        try:
            yield
        finally:
            for switch in switches:
                switch.clear()

    def _start_moto(self, host: str, port: int) -> None:
        self._moto = self._spawn("local_stack.aws_server", [host, str(port)], REPO, {})
        self.urls["aws"] = f"http://{host}:{port}"

    def _wait_for_moto(self, timeout: float) -> None:
        _wait_until_up(self._moto, f"{self.urls['aws']}/moto-api/data.json", "the moto server", timeout)

    def _start_model_server(self, host: str, port: int) -> None:
        self._model = self._spawn("model_server", [], REPO / "model", {"SAGEMAKER_BIND_TO_PORT": str(port)})
        self.urls["model"] = f"http://{host}:{port}"

    def _wait_for_model(self, timeout: float) -> None:
        _wait_until_up(self._model, f"{self.urls['model']}/ping", "the model server", timeout)

    def _spawn(self, module: str, args: list[str], root: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Our own interpreter running `module` from `root`, dying with this process."""
        path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
        stdout = None if self.options.verbose else subprocess.DEVNULL
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env={**os.environ, **env, "PYTHONPATH": path},
            stdout=stdout,
            stderr=stdout,
            preexec_fn=_die_with_parent,
        )

    def _endpoint_config(self) -> EndpointConfig:
        assert self.stack is not None
        resolver = self.stack.resolver
        raw = resolver.template["Resources"]["EndpointConfig"]["Properties"]["AsyncInferenceConfig"]
        async_config = resolver.resolve(raw)
        output = async_config["OutputConfig"]
        return EndpointConfig(
            endpoint_name=resolver.parameter("EndpointName"),
            output_path=output["S3OutputPath"],
            failure_path=output["S3FailurePath"],
            success_topic=output["NotificationConfig"]["SuccessTopic"],
            error_topic=output["NotificationConfig"]["ErrorTopic"],
            max_concurrent_invocations=int(async_config["ClientConfig"]["MaxConcurrentInvocationsPerInstance"]),
            model_url=self.urls["model"],
            region=REGION,
            instances=self.options.endpoint_instances,
        )

    def _serve(self, app: Any, host: str, port: int) -> None:
        server = _ThreadedUvicorn(app, host, port)
        server.start()
        self._servers.append(server)

    def _write_state(self, api_key: str) -> None:
        """`.local/env`: the template's Outputs and the functions' environment, as a deployed stack would give
        them, plus the local endpoints; written as `export` lines so `source .local/env` is all a shell needs."""
        assert self.stack is not None
        state = self.options.state_dir
        state.mkdir(parents=True, exist_ok=True)
        (state / "api-key").write_text(api_key + "\n")
        values = {
            **self.stack.outputs(),
            **self.stack.env,
            "API_URL": self.urls["api"],
            "INFERENCE_API_URL": self.urls["api"],
            "INFERENCE_API_KEY": api_key,
            "AWS_ENDPOINT_URL": self.urls["aws"],
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **FAKE_CREDENTIALS,
            "LOCAL_SAGEMAKER_URL": self.urls["sagemaker"],
            "SAGEMAKER_RUNTIME_ENDPOINT_URL": self.urls["sagemaker"],
            "MODEL_SERVER_URL": self.urls["model"],
        }
        (state / "env").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))

    def stop(self) -> None:
        self.stop_event.set()
        for server in reversed(self._servers):
            server.stop()
        for thread in [*self._pollers, *self._schedulers]:
            thread.join(timeout=5)
        for child in (self._model, self._moto):
            if child is not None and child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()


def read_env_file(path: Path) -> dict[str, str]:
    """Reads what `_write_state` writes (`export NAME=<shell-quoted value>` lines)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line.removeprefix("export "))
        if len(words) == 1 and "=" in words[0]:
            name, value = words[0].split("=", 1)
            values[name] = value
    return values
