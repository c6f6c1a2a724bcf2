# Shorthands for the scripts in scripts/ (the README uses the scripts directly).
.PHONY: check demo
check:
	scripts/check
demo:
	scripts/demo
