# A newcomer needs two targets: `make run` (the whole pipeline on this machine) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .venv-checkov
TORCH := torch==2.13.0
# sam build needs python3.13 on PATH for the python3.13 runtime (pyenv has it on these machines).
SAM_ENV := PYENV_VERSION=3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0

.PHONY: install run demo test test-unit test-integration test-e2e lint typecheck check-template checkov build deploy \
        deploy-prod bench bench-model bench-coldstart bench-cost bench-client bench-jobs bench-scale bench-cache bench-tenants fuzz fault-run key package-model clean

$(VENV)/.installed: requirements/dev.txt layers/requirements.txt api/requirements.txt model/requirements.txt client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements/dev.txt
	@# The repo's source roots on the venv's path, so `python -m local_stack` etc. work from anywhere.
	$(PY) -c "import pathlib, site; roots = [str(pathlib.Path(p).resolve()) for p in ('.', 'layers', 'api', 'model')]; \
	  pathlib.Path(site.getsitepackages()[0], 'serverless_inference.pth').write_text('\n'.join(roots) + '\n')"
	touch $@

install: $(VENV)/.installed

$(SAM_VENV)/.installed: requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q -r requirements/sam.txt
	touch $@

PORT ?= 8000
run: install  ## the whole pipeline on loopback: moto, API, event pumps, local SageMaker endpoint (make run PORT=8001)
	$(PY) -m local_stack --port $(PORT)

demo: install  ## against a running `make run`
	$(PY) -m local_stack.demo

test: install  ## unit, integration and end-to-end tests
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(VENV)/bin/mypy layers/inference_core api/inference_api functions local_stack model/model_server
	$(VENV)/bin/mypy --config-file client/pyproject.toml client/src

check-template: install $(SAM_VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint

# checkov in its own virtualenv too (its pins conflict with boto3's); offline, so no Prisma Cloud guidelines.
$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r requirements/checkov.txt
	touch $@

checkov: $(CHECKOV_VENV)/.installed  ## every finding fixed or skipped with a reason in template.yaml (README: Security)
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet \
	  --skip-download

build: $(SAM_VENV)/.installed
	$(SAM) validate --lint
	$(SAM_ENV) $(SAM) build

deploy: build
	$(SAM) deploy

deploy-prod: build
	$(SAM) deploy --config-env prod

bench: install  ## pipeline benchmark on the local stack; writes bench/results/pipeline.md
	$(PY) -m bench.pipeline

bench-model: install  ## model server throughput against sentence-transformers
	$(PY) -m bench.model_throughput

bench-coldstart: install  ## handler import cost vs bare baselines; writes bench/results/coldstart.md
	$(PY) -m bench.coldstart

BASELINE ?= 3be0838
bench-cost: install  ## $ per 1M predictions, baseline revision vs this tree (make bench-cost BASELINE=<rev>); writes bench/results/cost.md
	$(PY) -m bench.cost --baseline $(BASELINE)

bench-client: install  ## plain httpx loop vs inference_client, clean and under injected 429/503; writes bench/results/client.md
	$(PY) -m bench.client

bench-jobs: install  ## bulk jobs: a 20,000-line job vs the model server alone, AWS requests per line, interactive latency, a small job behind it; writes bench/results/jobs.md
	$(PY) -m bench.jobs

bench-scale: install  ## capacity simulation: a 10M-line workload on 1/2/4/8 scaling GPU instances, the product's gate and scheduler in simulated time; writes bench/results/scale.md
	$(PY) -m bench.scale

bench-tenants: install  ## fair dispatch: tenant A's burst of 5,000 predictions, then tenant B's 50 Prefer: wait requests, one lane vs the backlog lane; writes bench/results/tenants.md
	$(PY) -m bench.tenants

bench-cache: install  ## result cache: the same workloads with ResultCacheScope=off and on (endpoint inputs, cached Prefer: wait latency, AWS requests, a job run twice); writes bench/results/cache.md
	$(PY) -m bench.cache

fuzz: install  ## schemathesis against /openapi.json on a fresh local stack (bounded); fails on any 5xx
	$(PY) -m pytest tests/e2e/test_fuzz.py -q

fault-run: install  ## predictions under injected faults on the local stack; writes bench/results/faults.md
	$(PY) -m bench.faults

key: install  ## make key TENANT=acme [AWS_ENDPOINT_URL=... TABLE_NAME=...]
	$(PY) -m inference_core.cli create-key --tenant $(TENANT)

package-model: install  ## builds model.tar.gz; with BUCKET=... uploads it (needs requirements/deploy.txt)
	$(PY) -m model.package $(if $(BUCKET),--bucket $(BUCKET),)

clean:
	rm -rf .aws-sam .local .pytest_cache .mypy_cache .ruff_cache build
