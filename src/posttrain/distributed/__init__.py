"""Stages on a Ray cluster (`posttrain run RECIPE executor=ray`): the same records as the single-process stages,
written by the same writers, with the work spread over actors and tasks. Ray is an optional extra."""
