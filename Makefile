# ferry — build, run and test. `make run` and `make test` work on a fresh Debian 12 machine:
# they first install what is missing (scripts/install-deps.sh), then build with CMake + Ninja.
BUILD ?= build
CONFIG ?= ferry.json
DATA ?= $(CURDIR)/data
CTEST_ARGS ?=

.PHONY: all deps build web run test test-unit test-e2e test-images bench clean

all: deps build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja

build: $(BUILD)/build.ninja
	cmake --build $(BUILD)
	@scripts/build-web.sh $(BUILD)/src/web/ferry_openapi

# The web UI alone (web/dist): npm ci when the lock file changed, types from the API, vite build.
web: $(BUILD)/build.ninja
	cmake --build $(BUILD) --target ferry_openapi
	@scripts/build-web.sh $(BUILD)/src/web/ferry_openapi

run: deps build
	@$(BUILD)/ferry config init --config $(CONFIG) --data-folder $(DATA)
	@echo "ferry: starting 'ferry serve --config $(CONFIG)'; send images with: storescu -aec FERRY localhost 11112 some.dcm"
	@echo "ferry: open http://localhost:8080/ (user admin; the first start prints its password below, once); REST API on http://localhost:8080/api/v1"
	$(BUILD)/ferry serve --config $(CONFIG)

# Container images for the processor's tests and benchmark, built from Debian packages (about a
# minute the first time; instant when they exist).
test-images: deps
	@tests/images/build-images.sh

test: deps build test-images
	cd $(BUILD) && ctest --output-on-failure --timeout 900 -j2 $(CTEST_ARGS)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j2

test-e2e: build test-images
	cd $(BUILD) && ctest --output-on-failure -L e2e $(CTEST_ARGS)

bench: deps build test-images
	/usr/bin/python3 bench/receive_bench.py --ferry $(BUILD)/ferry
	/usr/bin/python3 bench/nagle_bench.py --ferry $(BUILD)/ferry
	/usr/bin/python3 bench/route_latency.py --ferry $(BUILD)/ferry
	/usr/bin/python3 bench/route_bench.py --ferry $(BUILD)/ferry
	/usr/bin/python3 bench/bookkeeper_bench.py --ferry $(BUILD)/ferry
	/usr/bin/python3 bench/process_bench.py --ferry $(BUILD)/ferry
	$(BUILD)/bench/rules_bench

clean:
	rm -rf $(BUILD)
