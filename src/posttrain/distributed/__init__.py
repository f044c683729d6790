"""Work on a Ray cluster. Stages (`posttrain run RECIPE executor=ray`): the same records as the single-process
stages, written by the same writers, with the work spread over actors and tasks. The online loop's generation
(`generation.engine: ray`, generation.py): a pool of actors sampling the current policy. Ray is an optional extra."""
