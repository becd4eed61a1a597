"""One small server per library, all with the same behaviour (see bench/loadgen/main.go)."""
