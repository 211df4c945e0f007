"""What this door keeps on its jobs (`Job.extra`, via RequestMeta.tags)."""

HOOK_FORMAT = "acedata"  # Job.extra["hook_format"]: callbacks take this API's result shape
TAG_ACTION = "acedata_action"  # the action name the task was asked with
TAG_SPLIT = "acedata_split"  # split_images was asked for
