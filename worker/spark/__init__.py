"""Spark submission: spark-submit argv (submit_args), reading its output (submit_output), the
standalone REST protocol (rest), following a cluster-mode driver with its logs (follow,
driver_logs) and the Java 17 options drivers need (java_options)."""
