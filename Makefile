# Convenience wrappers; the scripts are the source of truth (a fresh machine may lack make).
.PHONY: install demo test check bench docs lock
install: ; bash scripts/install.sh
demo: ; bash scripts/demo.sh
test: ; bash scripts/test.sh
check: ; bash scripts/check.sh
bench: ; bash scripts/bench.sh
docs: ; bash scripts/docs.sh
lock: ; bash scripts/lock.sh
