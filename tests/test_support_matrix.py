"""The rule that closes "accepted and ignored": every property of the flow,
task, trigger and condition models is either implemented, with the test that
shows its behaviour named here, or rejected at validation saying it is not
supported yet. The README's reference is checked against the same list."""
# ruff: noqa: E501 - the table names whole test functions, one per line


from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from harrier.common.errors import FlowValidationError
from harrier.common.flow import Flow, parse_flow
from harrier.common.task import Task, known_task_types, task_class
from harrier.common.trigger_conditions import CONDITION_TYPES, Condition
from harrier.common.triggers import TRIGGER_TYPES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

I = "tests/integration/"  # noqa: E741 - short prefixes keep the table readable
K = I + "test_kestra_semantics.py::"
E = I + "test_embedded_flows.py::"
S = I + "test_engine_semantics.py::"
F = "tests/common/test_flow.py::"
IN = "tests/common/test_inputs.py::"
R = "tests/common/test_retry.py::"
C = "tests/common/test_trigger_conditions.py::"
L = "tests/scheduler/test_trigger_loop.py::"
FT = "tests/scheduler/test_flow_triggers.py::"
SP = "tests/worker/spark/test_spark_submit_args.py::"
ST = I + "test_spark_tasks.py::"
W = "tests/scheduler/api/test_webhook.py::"
G = I + "test_flowable_groups.py::"
LO = I + "test_loops.py::"
D = I + "test_dag.py::"
X = I + "test_execution_tasks.py::"
SF = I + "test_subflows.py::"
FI = I + "test_for_each_item.py::"
PA = I + "test_pause.py::"
KV = I + "test_kv.py::"
WD = I + "test_working_directory.py::"
K2 = I + "test_kestra2_dialect.py::"
H = I + "test_http_tasks.py::"
N = I + "test_notifications.py::"

# "Model.property" (the class that declares it, the YAML name) -> the test that
# shows what it does.
SUPPORTED: dict[str, str] = {
    # -- the flow
    "Flow.id": F + "test_missing_and_unknown_properties_are_named",
    "Flow.namespace": F + "test_missing_and_unknown_properties_are_named",
    "Flow.revision": "tests/scheduler/api/test_flows.py::"
                     "test_a_revision_written_in_the_yaml_is_assigned_by_the_server",
    "Flow.description": "tests/scheduler/ui/test_pages.py::"
                        "test_descriptions_are_shown_on_the_flow_page",
    "Flow.labels": K + "test_flow_variables_labels_and_typed_outputs",
    "Flow.inputs": E + "test_tasks_of_a_list_run_in_order_and_pass_outputs",
    "Flow.variables": K + "test_flow_variables_labels_and_typed_outputs",
    "Flow.tasks": E + "test_tasks_of_a_list_run_in_order_and_pass_outputs",
    "Flow.errors": E + "test_errors_tasks_run_when_the_flow_fails",
    "Flow.finally": E + "test_errors_tasks_run_when_the_flow_fails",
    "Flow.triggers": L + "test_executions_carry_the_trigger_variables_and_inputs",
    "Flow.disabled": "tests/scheduler/api/test_executions.py::"
                     "test_a_disabled_flow_cannot_be_executed",
    "Flow.concurrency": I + "test_concurrency.py::"
                        "test_queue_runs_executions_one_at_a_time_in_order_and_all_succeed",
    "Flow.retry": S + "test_flow_level_retry_runs_the_failed_tasks_again_before_errors",
    "Flow.outputs": K + "test_flow_variables_labels_and_typed_outputs",
    "Flow.deleted": "tests/scheduler/test_flow_catalog.py::"
                    "test_disabled_flows_and_triggers_do_not_fire",
    "Concurrency.limit": I + "test_concurrency.py::"
                         "test_fail_ends_executions_past_the_limit_failed_naming_the_limit",
    "Concurrency.behavior": I + "test_concurrency.py::"
                            "test_cancel_ends_executions_past_the_limit_cancelled",
    "FlowOutput.id": K + "test_flow_variables_labels_and_typed_outputs",
    "FlowOutput.type": K + "test_flow_variables_labels_and_typed_outputs",
    "FlowOutput.value": K + "test_flow_variables_labels_and_typed_outputs",
    "FlowOutput.description": K + "test_flow_variables_labels_and_typed_outputs",
    # -- inputs
    "InputSpec.id": IN + "test_camel_case_aliases_and_field_names_both_populate",
    "InputSpec.type": IN + "test_values_are_coerced_to_their_type",
    "InputSpec.description": "tests/scheduler/ui/test_pages.py::"
                             "test_descriptions_are_shown_on_the_flow_page",
    "InputSpec.displayName": "tests/scheduler/ui/test_pages.py::"
                             "test_descriptions_are_shown_on_the_flow_page",
    "InputSpec.required": IN + "test_optional_inputs_without_value_are_none_and_defaults_apply",
    "InputSpec.defaults": IN + "test_optional_inputs_without_value_are_none_and_defaults_apply",
    "InputSpec.values": IN + "test_bad_values_name_input_expected_type_and_value",
    "InputSpec.allowCustomValue": IN + "test_values_are_coerced_to_their_type",
    "InputSpec.itemType": IN + "test_bad_values_name_input_expected_type_and_value",
    "InputSpec.validator": IN + "test_bad_values_name_input_expected_type_and_value",
    "InputSpec.min": IN + "test_bad_values_name_input_expected_type_and_value",
    "InputSpec.max": IN + "test_bad_values_name_input_expected_type_and_value",
    "InputSpec.minLength": IN + "test_bad_values_name_input_expected_type_and_value",
    "InputSpec.maxLength": IN + "test_bad_values_name_input_expected_type_and_value",
    "InputSpec.after": IN + "test_values_are_coerced_to_their_type",
    "InputSpec.before": IN + "test_bad_values_name_input_expected_type_and_value",
    # -- every task
    "Task.id": F + "test_duplicate_task_ids_point_at_the_second_one",
    "Task.type": F + "test_unknown_task_type_and_output_task_suggest_the_nearest",
    "Task.description": "tests/scheduler/ui/test_pages.py::"
                        "test_descriptions_are_shown_on_the_flow_page",
    "Task.retry": E + "test_retry_records_every_attempt_and_waits_the_interval",
    "Task.timeout": E + "test_timeout_kills_the_whole_process_group",
    "Task.allowFailure": E + "test_allow_failure_gives_warning_and_continues",
    "Task.disabled": K + "test_disabled_tasks_do_not_run",
    "Task.taskRunner": I + "test_docker_flows.py::"
                       "test_a_flow_task_runs_in_a_container_and_passes_outputs",
    "Task.workerGroup": K + "test_worker_group_routes_the_task_to_its_queue",
    "Task.logLevel": K + "test_script_task_properties_do_what_kestra_does",
    "Task.runIf": K + "test_run_if_when_if_and_fail_read_truth_as_kestra",
    "TaskRunnerSpec.type": I + "test_docker_flows.py::"
                           "test_a_flow_task_runs_in_a_container_and_passes_outputs",
    "WorkerGroup.key": K + "test_worker_group_routes_the_task_to_its_queue",
    # -- retry policies
    "ConstantRetry.type": E + "test_retry_records_every_attempt_and_waits_the_interval",
    "ConstantRetry.interval": E + "test_retry_records_every_attempt_and_waits_the_interval",
    "ExponentialRetry.type": R + "test_exponential_waits_grow_by_delay_factor_up_to_max_interval",
    "ExponentialRetry.interval": R + "test_exponential_waits_grow_by_delay_factor_up_to_max_interval",
    "ExponentialRetry.maxInterval": R + "test_exponential_waits_grow_by_delay_factor_up_to_max_interval",
    "ExponentialRetry.delayFactor": R + "test_exponential_waits_grow_by_delay_factor_up_to_max_interval",
    "RandomRetry.type": R + "test_random_waits_stay_between_min_and_max_interval",
    "RandomRetry.minInterval": R + "test_random_waits_stay_between_min_and_max_interval",
    "RandomRetry.maxInterval": R + "test_random_waits_stay_between_min_and_max_interval",
    "_RetryBase.maxAttempts": R + "test_max_attempts_and_the_older_max_attempt_count_the_first_attempt",
    "_RetryBase.maxAttempt": R + "test_max_attempts_and_the_older_max_attempt_count_the_first_attempt",
    "_RetryBase.maxDuration": R + "test_max_duration_stops_retrying_when_the_next_wait_would_pass_it",
    "_RetryBase.warningOnRetry": K + "test_warning_on_retry_ends_a_task_that_needed_a_retry_warning",
    "_RetryBase.behavior": S + "test_create_new_execution_ends_this_one_retried_and_the_next_attempt_runs",
    # -- task types
    "Log.message": E + "test_tasks_of_a_list_run_in_order_and_pass_outputs",
    "Log.level": K + "test_script_task_properties_do_what_kestra_does",
    "Echo.format": K + "test_return_without_format_and_the_deprecated_echo_run",
    "Echo.level": K + "test_return_without_format_and_the_deprecated_echo_run",
    "Return.format": K + "test_return_without_format_and_the_deprecated_echo_run",
    "Fail.condition": K + "test_run_if_when_if_and_fail_read_truth_as_kestra",
    "Fail.errorMessage": S + "test_fail_is_retried_like_any_task",
    "Sleep.duration": K + "test_script_task_properties_do_what_kestra_does",
    "If.condition": K + "test_run_if_when_if_and_fail_read_truth_as_kestra",
    "If.then": E + "test_if_picks_a_branch_at_run_time",
    "If.else": E + "test_if_picks_a_branch_at_run_time",
    "Switch.value": E + "test_switch_runs_the_matching_case",
    "Switch.cases": E + "test_switch_runs_the_matching_case",
    "Switch.defaults": K + "test_switch_without_a_match_runs_its_defaults",
    "Parallel.tasks": E + "test_parallel_branches_run_concurrently",
    "Parallel.concurrent": S + "test_parallel_concurrent_is_a_sliding_window",
    "Sequential.tasks": S + "test_allow_failure_on_a_flowable_makes_it_a_warning_and_the_flow_goes_on",
    "Commands.commands": E + "test_tasks_of_a_list_run_in_order_and_pass_outputs",
    "ShellScript.script": K + "test_script_task_properties_do_what_kestra_does",
    "PythonCommands.commands": E + "test_kestra_python_helper_sets_outputs",
    "PythonScript.script": E + "test_kestra_python_helper_sets_outputs",
    "PythonScript.python": K + "test_python_script_runs_with_the_named_python",
    "ScriptTask.env": K + "test_script_task_properties_do_what_kestra_does",
    "ScriptTask.interpreter": K + "test_script_task_properties_do_what_kestra_does",
    "ScriptTask.beforeCommands": K + "test_script_task_properties_do_what_kestra_does",
    "ScriptTask.containerImage": I + "test_docker_flows.py::"
                                 "test_a_flow_task_runs_in_a_container_and_passes_outputs",
    "ScriptTask.inputFiles": K + "test_script_task_properties_do_what_kestra_does",
    "ScriptTask.outputFiles": K + "test_script_task_properties_do_what_kestra_does",
    "ScriptTask.warningOnStdErr": K + "test_script_task_properties_do_what_kestra_does",
    "ScriptTask.failFast": K + "test_script_task_properties_do_what_kestra_does",
    "ScriptTask.runner": "tests/worker/test_docker_runner.py::"
                         "test_the_older_runner_and_docker_syntax_picks_the_docker_runner_and_image",
    "ScriptTask.docker": "tests/worker/test_docker_runner.py::"
                         "test_the_older_runner_and_docker_syntax_picks_the_docker_runner_and_image",
    "SparkCLI.commands": ST + "test_spark_cli_cluster_mode_follows_the_driver_to_success",
    "SparkCLI.waitForCompletion": ST + "test_wait_for_completion_false_returns_once_the_driver_is_submitted",
    "SparkCLI.masterWebUrl": ST + "test_a_lost_attempts_driver_is_re_attached_not_submitted_again",
    "SparkCLI.java17Options": K + "test_spark_cli_java17_options_reach_spark_submit_unless_turned_off",
    "SparkSubmitTask.master": SP + "test_jar_submit_argv_follows_spark_submit_option_order",
    "SparkSubmitTask.name": SP + "test_jar_submit_argv_follows_spark_submit_option_order",
    "SparkSubmitTask.args": SP + "test_argv_carries_arguments_verbatim_so_no_shell_can_interpret_them",
    "SparkSubmitTask.appFiles": SP + "test_jar_submit_argv_follows_spark_submit_option_order",
    "SparkSubmitTask.verbose": SP + "test_jar_submit_argv_follows_spark_submit_option_order",
    "SparkSubmitTask.configurations": SP + "test_java17_options_are_added_by_default_and_user_values_win",
    "SparkSubmitTask.deployMode": SP + "test_unknown_deploy_mode_is_a_clear_error",
    "SparkSubmitTask.sparkSubmitPath": SP + "test_python_submit_argv_passes_py_files_and_script",
    "SparkSubmitTask.submitter": ST + "test_jar_submit_succeeds_and_args_reach_the_job_verbatim",
    "SparkSubmitTask.waitForCompletion": ST + "test_a_lost_attempts_driver_is_re_attached_not_submitted_again",
    "SparkSubmitTask.masterWebUrl": ST + "test_jar_submit_succeeds_and_args_reach_the_job_verbatim",
    "SparkSubmitTask.java17Options": SP + "test_java17_options_can_be_turned_off",
    "JarSubmit.mainResource": SP + "test_jar_submit_argv_follows_spark_submit_option_order",
    "JarSubmit.mainClass": SP + "test_jar_submit_argv_follows_spark_submit_option_order",
    "JarSubmit.jars": SP + "test_rest_request_is_cluster_mode_with_file_uris_and_spark_jars",
    "PythonSubmit.mainScript": SP + "test_python_submit_argv_passes_py_files_and_script",
    "PythonSubmit.pythonFiles": SP + "test_python_submit_argv_passes_py_files_and_script",
    # -- flowables and execution tasks
    "FlowableTask.errors": G + "test_errors_of_a_flowable_run_on_its_failure_and_it_stays_failed",
    "FlowableTask.finally": G + "test_finally_of_a_flowable_runs_after_success_and_after_failure",
    "Task.allowWarning": G + "test_allow_warning_turns_a_warning_into_success",
    "AllowFailure.tasks": G + "test_allow_failure_group_ends_warning_and_the_flow_goes_on",
    "ForEach.values": LO + "test_for_each_runs_its_tasks_once_per_value_in_order",
    "ForEach.tasks": LO + "test_for_each_runs_its_tasks_once_per_value_in_order",
    "ForEach.concurrencyLimit": LO + "test_concurrency_limit_is_a_window_of_values",
    "EachSequential.value": LO + "test_each_sequential_and_each_parallel",
    "EachSequential.tasks": LO + "test_each_sequential_and_each_parallel",
    "EachParallel.value": LO + "test_each_sequential_and_each_parallel",
    "EachParallel.tasks": LO + "test_each_sequential_and_each_parallel",
    "EachParallel.concurrent": LO + "test_each_sequential_and_each_parallel",
    "Dag.tasks": D + "test_tasks_start_when_what_they_depend_on_has_ended",
    "Dag.concurrent": F + "test_a_dag_limit_other_than_zero_is_refused",
    "DagTask.task": D + "test_tasks_start_when_what_they_depend_on_has_ended",
    "DagTask.dependsOn": D + "test_a_failed_task_skips_only_what_depends_on_it",
    "Assert.conditions": X + "test_assert_fails_with_every_false_condition_logged",
    "Assert.errorMessage": X + "test_assert_fails_with_every_false_condition_logged",
    "Subflow.namespace": SF + "test_child_outputs_and_links_both_ways",
    "Subflow.flowId": SF + "test_child_outputs_and_links_both_ways",
    "Subflow.inputs": SF + "test_child_outputs_and_links_both_ways",
    "Subflow.labels": SF + "test_child_outputs_and_links_both_ways",
    "Subflow.inheritLabels": SF + "test_inherit_labels_passes_the_parents_labels",
    "Subflow.transmitFailed": SF + "test_failed_child_fails_the_parent_unless_transmit_failed_is_false",
    "Subflow.wait": SF + "test_wait_false_ends_at_once_and_the_child_runs_on",
    "Subflow.revision": SF + "test_revision_pins_the_childs_revision",
    "ForEachItem.items": FI + "test_ten_lines_by_three_make_four_children_each_with_its_batch",
    "ForEachItem.batch": FI + "test_ten_lines_by_three_make_four_children_each_with_its_batch",
    "ForEachItemBatch.rows": FI + "test_ten_lines_by_three_make_four_children_each_with_its_batch",
    "ForEachItemBatch.bytes": FI + "test_batches_by_bytes_or_partitions",
    "ForEachItemBatch.partitions": FI + "test_batches_by_bytes_or_partitions",
    "Pause.pauseDuration": PA + "test_pause_duration_ends_the_pause_per_behavior",
    "Pause.behavior": PA + "test_pause_duration_ends_the_pause_per_behavior",
    "Pause.onResume": PA + "test_pause_waits_then_resumes_with_typed_inputs",
    "Resume.executionId": PA + "test_resume_task_resumes_another_execution",
    "Resume.namespace": PA + "test_resume_task_resumes_another_execution",
    "Resume.flowId": PA + "test_resume_task_resumes_another_execution",
    "Resume.inputs": PA + "test_resume_task_resumes_another_execution",
    "KVSet.key": KV + "test_kv_tasks_and_the_kv_function",
    "KVSet.value": KV + "test_kv_tasks_and_the_kv_function",
    "KVSet.namespace": KV + "test_kv_tasks_and_the_kv_function",
    "KVSet.overwrite": KV + "test_kv_tasks_and_the_kv_function",
    "KVSet.ttl": KV + "test_kv_tasks_and_the_kv_function",
    "KVSet.kvType": KV + "test_kv_type_converts_the_value_and_kv_returns_it_typed",
    "KVGet.key": KV + "test_kv_tasks_and_the_kv_function",
    "KVGet.namespace": KV + "test_kv_tasks_and_the_kv_function",
    "KVGet.errorOnMissing": KV + "test_missing_keys_fail_where_kestra_fails",
    "KVGetKeys.prefix": KV + "test_kv_tasks_and_the_kv_function",
    "KVGetKeys.namespace": KV + "test_kv_tasks_and_the_kv_function",
    "KVDelete.key": KV + "test_kv_tasks_and_the_kv_function",
    "KVDelete.namespace": KV + "test_kv_tasks_and_the_kv_function",
    "KVDelete.errorOnMissing": KV + "test_missing_keys_fail_where_kestra_fails",
    "Labels.labels": X + "test_labels_set_while_running_show_on_the_execution_and_in_search",
    "OutputValues.values": X + "test_output_values_are_read_by_later_tasks",
    "LoopUntil.condition": LO + "test_loop_until_repeats_until_the_condition_holds",
    "LoopUntil.tasks": LO + "test_loop_until_repeats_until_the_condition_holds",
    "LoopUntil.checkFrequency": LO + "test_loop_until_repeats_until_the_condition_holds",
    "LoopUntil.failOnMaxReached": LO + "test_wait_for_stops_at_max_iterations",
    "CheckFrequency.interval": LO + "test_a_loop_until_waiting_for_its_next_check_holds_nothing_and_is_killed_at_once",
    "CheckFrequency.maxIterations": LO + "test_wait_for_stops_at_max_iterations",
    "CheckFrequency.maxDuration": LO + "test_loop_until_stops_at_max_duration",
    "WorkingDirectory.tasks": WD + "test_children_share_one_directory_in_order_on_one_worker",
    "WorkingDirectory.inputFiles": WD + "test_children_share_one_directory_in_order_on_one_worker",
    "WorkingDirectory.outputFiles": WD + "test_children_share_one_directory_in_order_on_one_worker",
    "WorkingDirectory.cache": WD + "test_what_a_working_directory_rejects",
    "WorkingDirectory.namespaceFiles": WD + "test_what_a_working_directory_rejects",
    "Loop.values": K2 + "test_loop_over_a_map_gives_item_key_and_value",
    "Loop.tasks": K2 + "test_loop_gives_item_to_every_nested_task_and_reads_its_own_iteration",
    "Loop.concurrencyLimit": K2 + "test_concurrency_limit_bounds_the_iterations_running_at_once",
    "Loop.outputs": K2 + "test_loop_declared_outputs_are_listed_per_iteration_after_the_loop",
    "Loop.fetchType": K2 + "test_a_loop_over_a_storage_file_runs_a_line_each_and_stores_outputs",
    "Loop.transmitFailed": K2 + "test_without_transmit_failed_the_loop_runs_every_iteration_and_succeeds",
    "Loop.breakWhen": K2 + "test_break_when_stops_starting_iterations",
    # -- triggers
    "Trigger.id": L + "test_a_trigger_disabled_at_run_time_lets_its_ticks_pass_and_resumes_when_enabled",
    "Trigger.type": L + "test_executions_carry_the_trigger_variables_and_inputs",
    "Trigger.description": "tests/scheduler/ui/test_pages.py::"
                           "test_descriptions_are_shown_on_the_flow_page",
    "Trigger.disabled": "tests/scheduler/test_flow_catalog.py::"
                        "test_disabled_flows_and_triggers_do_not_fire",
    "Trigger.inputs": L + "test_executions_carry_the_trigger_variables_and_inputs",
    "Trigger.conditions": L + "test_a_schedule_whose_conditions_are_false_does_not_fire",
    "Trigger.when": L + "test_when_on_a_trigger_is_a_condition",
    "Trigger.stopAfter": L + "test_stop_after_disables_the_trigger_once_its_execution_ends_so",
    "ScheduleTrigger.cron": "tests/common/test_cron.py::test_every_five_seconds_with_seconds",
    "ScheduleTrigger.withSeconds": "tests/common/test_cron.py::"
                                   "test_with_seconds_expects_six_fields_seconds_first",
    "ScheduleTrigger.timezone": "tests/common/test_cron.py::"
                                "test_timezone_evaluates_in_local_time_and_returns_utc",
    "ScheduleTrigger.recoverMissedSchedules": L + "test_a_restarted_scheduler_recovers_missed_"
                                                  "ticks_per_policy",
    "ScheduleTrigger.backfill": L + "test_a_declared_backfill_fires_each_tick_of_its_range_once",
    "ScheduleTrigger.lateMaximumDelay": L + "test_late_maximum_delay_skips_ticks_fired_too_late",
    "Backfill.start": L + "test_a_declared_backfill_fires_each_tick_of_its_range_once",
    "Backfill.end": L + "test_a_declared_backfill_fires_each_tick_of_its_range_once",
    "Backfill.inputs": L + "test_a_declared_backfill_fires_each_tick_of_its_range_once",
    "Backfill.labels": L + "test_a_declared_backfill_fires_each_tick_of_its_range_once",
    "WebhookTrigger.key": W + "test_webhook_with_wrong_key_is_404_and_creates_nothing",
    "FlowTrigger.states": FT + "test_the_triggered_flow_does_not_trigger_itself_without_a_matching_condition",
    "FlowTrigger.preconditions": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "Preconditions.id": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "Preconditions.flows": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "Preconditions.resetOnSuccess": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "Preconditions.timeWindow": FT + "test_preconditions_met_in_different_windows_do_not_fire",
    "TimeWindow.type": FT + "test_time_windows_follow_kestras_four_types",
    "TimeWindow.window": FT + "test_preconditions_met_in_different_windows_do_not_fire",
    "TimeWindow.windowAdvance": FT + "test_daily_time_window_and_fixed_duration_windows",
    "TimeWindow.deadline": FT + "test_an_end_after_the_daily_deadline_counts_for_nothing",
    "TimeWindow.startTime": FT + "test_daily_time_window_and_fixed_duration_windows",
    "TimeWindow.endTime": FT + "test_daily_time_window_and_fixed_duration_windows",
    "Preconditions.where": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    "UpstreamFlow.namespace": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "UpstreamFlow.flowId": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "UpstreamFlow.states": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "UpstreamFlow.labels": FT + "test_preconditions_wait_for_every_upstream_flow_then_reset",
    "ExecutionFilter.id": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    "ExecutionFilter.operand": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    "ExecutionFilter.filters": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    "Filter.field": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    "Filter.type": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    "Filter.value": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    "Filter.values": FT + "test_preconditions_where_filters_on_namespace_state_and_expressions",
    # -- HTTP calls and alerts
    "HttpTask.uri": H + "test_get_returns_code_headers_and_body_as_outputs",
    "HttpTask.headers": H + "test_get_returns_code_headers_and_body_as_outputs",
    "HttpTask.method": H + "test_post_sends_the_rendered_body_with_its_content_type",
    "HttpTask.body": H + "test_post_sends_the_rendered_body_with_its_content_type",
    "HttpTask.contentType": H + "test_post_sends_the_rendered_body_with_its_content_type",
    "HttpTask.formData": H + "test_form_data_is_url_encoded_or_multipart_with_a_downloaded_file",
    "HttpTask.allowFailed": H + "test_an_error_answer_fails_the_task_unless_allow_failed",
    "HttpTask.options": H + "test_an_error_answer_fails_the_task_unless_allow_failed",
    "HttpOptions.allowFailed": H + "test_an_error_answer_fails_the_task_unless_allow_failed",
    "HttpOptions.timeout": H + "test_read_timeout_and_task_timeout_fail_the_task",
    "TimeoutOptions.readIdleTimeout": H + "test_read_timeout_and_task_timeout_fail_the_task",
    "TimeoutOptions.connectTimeout": H + "test_connect_timeouts_in_both_of_kestras_places",
    "HttpOptions.connectTimeout": H + "test_connect_timeouts_in_both_of_kestras_places",
    "HttpOptions.readTimeout": H + "test_the_older_flat_read_timeouts_and_basic_auth_names_work",
    "HttpOptions.readIdleTimeout": H + "test_the_older_flat_read_timeouts_and_basic_auth_names_work",
    "HttpOptions.basicAuthUser": H + "test_the_older_flat_read_timeouts_and_basic_auth_names_work",
    "HttpOptions.basicAuthPassword": H + "test_the_older_flat_read_timeouts_and_basic_auth_names_work",
    # No connection pool to keep idle connections in; Kestra ignores it too.
    "HttpOptions.connectionPoolIdleTimeout": H + "test_the_older_flat_read_timeouts_and_basic_auth_names_work",
    "HttpOptions.auth": H + "test_basic_and_bearer_auth_send_the_authorization_header",
    "AuthOptions.type": H + "test_basic_and_bearer_auth_send_the_authorization_header",
    "AuthOptions.username": H + "test_basic_and_bearer_auth_send_the_authorization_header",
    "AuthOptions.password": H + "test_basic_and_bearer_auth_send_the_authorization_header",
    "AuthOptions.token": H + "test_basic_and_bearer_auth_send_the_authorization_header",
    "HttpOptions.followRedirects": H + "test_redirects_are_followed_unless_told_not_to",
    "HttpOptions.defaultCharset": H + "test_default_charset_encodes_the_body",
    "HttpOptions.maxContentLength": H + "test_max_content_length_bounds_the_body",
    "Request.encryptBody": H + "test_unsupported_or_bad_properties_are_rejected_at_validation",
    "Download.failOnEmptyResponse": H + "test_download_of_an_empty_answer_fails_unless_told_otherwise",
    "IncomingWebhook.url": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "IncomingWebhook.payload": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "IncomingWebhook.options": N + "test_webhook_options_headers_timeouts_size_and_charset",
    "RequestOptions.headers": N + "test_webhook_options_headers_timeouts_size_and_charset",
    "RequestOptions.defaultCharset": N + "test_webhook_options_headers_timeouts_size_and_charset",
    "RequestOptions.readIdleTimeout": N + "test_webhook_options_headers_timeouts_size_and_charset",
    "RequestOptions.maxContentLength": N + "test_webhook_options_headers_timeouts_size_and_charset",
    "RequestOptions.connectionPoolIdleTimeout": N + "test_webhook_options_headers_timeouts_size_and_charset",
    "RequestOptions.readTimeout": N + "test_a_webhook_answering_500_is_retried_and_a_slow_one_times_out",
    "RequestOptions.connectTimeout": N + "test_webhook_connect_timeout",
    "SlackExecution.customMessage": N + "test_slack_execution_sums_up_the_failed_execution",
    "SlackExecution.customFields": N + "test_slack_execution_sums_up_the_failed_execution",
    "SlackExecution.channel": N + "test_slack_execution_sums_up_the_failed_execution",
    "SlackExecution.username": N + "test_slack_execution_sums_up_the_failed_execution",
    "SlackExecution.executionId": N + "test_slack_execution_of_another_execution_with_icons",
    "SlackExecution.iconUrl": N + "test_slack_execution_of_another_execution_with_icons",
    "SlackExecution.iconEmoji": N + "test_slack_execution_of_another_execution_with_icons",
    "MailSend.host": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.port": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.transportStrategy": N + "test_mail_with_a_wrong_password_or_no_server_fails_clearly",
    "MailSend.username": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.password": N + "test_mail_with_a_wrong_password_or_no_server_fails_clearly",
    "MailSend.from": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.to": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.cc": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.subject": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.htmlTextContent": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.attachments": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "Attachment.name": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "Attachment.uri": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "Attachment.contentType": N + "test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail",
    "MailSend.plainTextContent": N + "test_mail_embeds_images_the_html_refers_to",
    "MailSend.embeddedImages": N + "test_mail_embeds_images_the_html_refers_to",
    "MailSend.sessionTimeout": N + "test_mail_session_timeout_bounds_a_silent_server",
    # -- trigger conditions
    "Condition.type": C + "test_old_type_names_are_aliases",
    "ExpressionCondition.expression": C + "test_weekend_and_expression",
    "DayWeekCondition.date": C + "test_day_week_reads_the_date_where_it_is",
    "DayWeekCondition.dayOfWeek": C + "test_day_week_reads_the_date_where_it_is",
    "DayWeekInMonthCondition.date": C + "test_day_week_in_month_matches_the_calendar",
    "DayWeekInMonthCondition.dayOfWeek": C + "test_day_week_in_month_matches_the_calendar",
    "DayWeekInMonthCondition.dayInMonth": C + "test_day_week_in_month_matches_the_calendar",
    "WeekendCondition.date": C + "test_a_condition_that_cannot_be_evaluated_says_why",
    "DateTimeBetweenCondition.date": C + "test_date_time_between_is_inclusive_and_time_between_"
                                         "exclusive",
    "DateTimeBetweenCondition.after": C + "test_date_time_between_is_inclusive_and_time_between_"
                                          "exclusive",
    "DateTimeBetweenCondition.before": C + "test_date_time_between_is_inclusive_and_time_"
                                           "between_exclusive",
    "TimeBetweenCondition.date": C + "test_date_time_between_is_inclusive_and_time_between_"
                                     "exclusive",
    "TimeBetweenCondition.after": C + "test_date_time_between_is_inclusive_and_time_between_"
                                      "exclusive",
    "TimeBetweenCondition.before": C + "test_date_time_between_is_inclusive_and_time_between_"
                                       "exclusive",
    "_Nested.conditions": C + "test_not_and_or_combine",
    "ExecutionStatusCondition.in": FT + "test_a_flow_trigger_starts_its_flow_with_trigger_variables_and_inputs",
    "ExecutionStatusCondition.notIn": FT + "test_an_end_recorded_before_any_scheduler_ran_is_not_lost",
    "ExecutionFlowCondition.namespace": FT + "test_a_flow_trigger_starts_its_flow_with_trigger_variables_and_inputs",
    "ExecutionFlowCondition.flowId": FT + "test_a_flow_trigger_starts_its_flow_with_trigger_variables_and_inputs",
    "ExecutionNamespaceCondition.namespace": FT + "test_an_end_read_by_two_replicas_or_twice_starts_one_execution",
    "ExecutionNamespaceCondition.comparison": FT + "test_an_end_read_by_two_replicas_or_twice_starts_one_execution",
    "ExecutionNamespaceCondition.prefix": C + "test_execution_namespace_compares_equals_prefix_or_suffix",
    "ExecutionLabelsCondition.labels": FT + "test_the_triggered_flow_does_not_trigger_itself_without_a_matching_condition",
    "ExecutionOutputsCondition.expression": FT + "test_execution_outputs_condition_reads_the_upstream_outputs",
}

# Kestra properties Harrier does not have: validation says so, by name.
FLOW_HEAD = "id: f\nnamespace: n\n"
ONE_TASK = "tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]\n"
REJECTED: dict[str, str] = {
    "sla": FLOW_HEAD + ONE_TASK + "sla: [{id: s, type: MAX_DURATION, duration: PT1H}]\n",
    "afterExecution": FLOW_HEAD + ONE_TASK + "afterExecution: []\n",
    "checks": FLOW_HEAD + ONE_TASK + "checks: []\n",
    "logToFile": FLOW_HEAD + "tasks: [{id: t, type: io.kestra.plugin.core.log.Log, "
                 "message: hi, logToFile: true}]\n",
    "shmSize": FLOW_HEAD + "tasks: [{id: t, type: io.kestra.plugin.scripts.shell.Commands, "
               "commands: [x], containerImage: alpine, taskRunner: "
               "{type: io.kestra.plugin.scripts.runner.docker.Docker, shmSize: 1g}}]\n",
    "scheduleDate": FLOW_HEAD + "tasks: [{id: t, type: io.kestra.plugin.core.flow.Subflow, "
                    "namespace: n, flowId: f, scheduleDate: '2030-01-01T00:00:00Z'}]\n",
    "separator": FLOW_HEAD + "tasks: [{id: t, type: io.kestra.plugin.core.flow.ForEachItem, "
                 "items: x, namespace: n, flowId: f, batch: {separator: ';'}}]\n",
    "regexPattern": FLOW_HEAD + "tasks: [{id: t, type: io.kestra.plugin.core.flow.ForEachItem, "
                    "items: x, namespace: n, flowId: f, batch: {regexPattern: '(a)'}}]\n",
    "tasks": FLOW_HEAD + "tasks: [{id: t, type: io.kestra.plugin.core.flow.Pause, "
             "tasks: [{id: x, type: io.kestra.plugin.core.log.Log, message: hi}]}]\n",
    "restartBehavior": FLOW_HEAD + "tasks: [{id: t, type: io.kestra.plugin.core.flow.Subflow, "
                       "namespace: n, flowId: f, restartBehavior: RETRY_FAILED}]\n",
    "stopAfter": FLOW_HEAD + ONE_TASK + "triggers:\n  - id: f\n    type: "
                 "io.kestra.plugin.core.trigger.Flow\n    stopAfter: [FAILED]\n    conditions:\n"
                 "      - {type: io.kestra.plugin.core.condition.Expression, expression: 'true'}\n",
}


def _owner(model: type[BaseModel], name: str) -> type[BaseModel]:
    for cls in reversed(model.__mro__):
        if isinstance(cls, type) and issubclass(cls, BaseModel) and \
                name in inspect.get_annotations(cls):
            return cls
    return model


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    return found


@cache
def model_properties() -> dict[str, type[BaseModel]]:
    """Every "Model.property" of the models a flow is made of."""
    roots: list[type[BaseModel]] = [
        Flow, Task, *(task_class(name) for name in known_task_types()),
        *TRIGGER_TYPES.values(), *CONDITION_TYPES.values()]
    found: dict[str, type[BaseModel]] = {}
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            if info.exclude and name == "source":
                continue  # the YAML text itself, not a property
            owner = _owner(model, name)
            found[f"{owner.__name__}.{info.alias or name}"] = owner
            for inner in _models_in(info.annotation):
                if not issubclass(inner, Task | Condition):
                    walk(inner)

    for root in roots:
        if root is not None:
            walk(root)
    return found


@cache
def _test_functions(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


def test_every_property_is_implemented_with_a_test_or_rejected() -> None:
    missing = sorted(set(model_properties()) - set(SUPPORTED))
    assert not missing, (
        "properties accepted with no behaviour test listed in tests/test_support_matrix.py "
        f"(implement and test them, or reject them at validation): {missing}")
    stale = sorted(set(SUPPORTED) - set(model_properties()))
    assert not stale, f"listed properties that no model has any more: {stale}"


@pytest.mark.parametrize("prop", sorted(SUPPORTED))
def test_the_listed_test_exists(prop: str) -> None:
    path, _, name = SUPPORTED[prop].partition("::")
    assert name in _test_functions(path), f"{prop}: {SUPPORTED[prop]} does not exist"


@pytest.mark.parametrize("prop", sorted(REJECTED))
def test_kestra_properties_harrier_lacks_are_rejected_by_name(prop: str) -> None:
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(REJECTED[prop], "flows/f.yaml")
    messages = " ".join(str(p) for p in caught.value.problems)
    assert prop in messages and "not supported yet" in messages, messages


# -- the README's reference, checked against the same lists
def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_the_readme_names_every_supported_property() -> None:
    reference = _section("Flows") + _section("Templates and untrusted input") + \
        _section("Scheduler and triggers") + _section("Task runners: Process or Docker") + \
        _section("Spark") + _section("HTTP calls and alerts")
    prose = re.sub(r"```.*?```", "", reference, flags=re.S)  # code blocks: not reference
    prose = re.sub(r"``.*?``", "", prose, flags=re.S)  # literal text that holds backticks
    named = set(re.findall(r"`([^`]+)`", prose))
    words = {word for text in named for word in re.findall(r"[A-Za-z_][\w]*", text)}
    absent = sorted({prop for prop in SUPPORTED
                     if prop.partition(".")[2] not in words})
    assert not absent, f"README does not name these supported properties: {absent}"


def test_the_readme_lists_every_task_type_and_condition() -> None:
    types = {task_class(name).type_names[0] for name in known_task_types()}  # type: ignore[union-attr]
    absent = sorted(t for t in types if f"`{t}`" not in README and
                    not re.search(rf"`{re.escape(t.rsplit('.', 1)[0])}\.\.\.", README) and
                    f"`...{t.rsplit('.', 2)[-2]}.{t.rsplit('.', 1)[1]}`" not in README and
                    f"`...{t.rsplit('.', 1)[1]}`" not in README)
    assert not absent, f"README's task table misses: {absent}"
    conditions = {cls.type_names[0].rsplit(".", 1)[1] for cls in CONDITION_TYPES.values()}
    absent = sorted(c for c in conditions if f"`{c}`" not in _section("Scheduler and triggers"))
    assert not absent, f"README's trigger section misses conditions: {absent}"


def test_the_readme_says_what_is_rejected() -> None:
    absent = sorted(prop for prop in REJECTED if f"`{prop}`" not in README)
    assert not absent, f"README does not say these are not supported: {absent}"
