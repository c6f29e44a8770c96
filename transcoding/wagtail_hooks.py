from wagtail import hooks


@hooks.register("register_log_actions")
def register_transcoding_log_actions(actions):
    actions.register_action("transcoding.rerun", "Re-run processing", "Re-ran video processing")
