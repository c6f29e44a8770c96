from django.core.exceptions import ValidationError
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from wagtail import blocks


class VideoChooserBlock(blocks.ChooserBlock):
    """Chooses a Video with the library's chooser modal."""

    @cached_property
    def target_model(self):
        from . import get_video_model

        return get_video_model()

    @cached_property
    def widget(self):
        # Imported late: the chooser viewset needs the model, and the model's
        # StreamField needs this block.
        from .views.chooser import video_chooser_viewset

        return video_chooser_viewset.widget_class()

    def get_form_state(self, value):
        return self.widget.get_value_data(value)

    class Meta:
        icon = "media"
        label = _("Video")


class VideoBlock(blocks.StructBlock):
    video = VideoChooserBlock()
    caption = blocks.CharBlock(required=False, max_length=255)

    class Meta:
        icon = "media"
        label = _("Video")
        template = "private_video/blocks/video_block.html"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Set here, not passed to the CharBlock: a label among a child's
        # arguments is part of the block's definition, and every site using
        # VideoBlock would need a migration for it. (Meta labels are not.)
        self.child_blocks["caption"].label = _("Caption")


# --- which videos a block's value chooses ----------------------------------------------


def is_video_chooser(block):
    """A chooser block whose target is the video library's model (VideoChooserBlock or a site's own)."""
    if not isinstance(block, blocks.ChooserBlock):
        return False
    from . import get_video_model

    try:
        model = block.model_class
    except (LookupError, ValueError):
        return False
    return isinstance(model, type) and issubclass(model, get_video_model())


def _child_values(block, value):
    """(key, child block, child value) for the children of a Stream, List or Struct value."""
    if value is None:
        return
    if isinstance(block, blocks.StreamBlock):
        for index, child in enumerate(value):
            yield index, child.block, child.value
    elif isinstance(block, blocks.ListBlock):
        for index, item in enumerate(value):
            yield index, block.child_block, item
    elif isinstance(block, blocks.StructBlock):
        for name, child_block in block.child_blocks.items():
            yield name, child_block, value.get(name)


def _as_video(value):
    from . import get_video_model

    Video = get_video_model()
    if value is None or isinstance(value, Video):
        return value
    # A raw id (some StreamField paths hold ids rather than instances).
    return Video.objects.filter(pk=value).first()


def chosen_videos(block, value):
    """Every video that ``value`` chooses, however deeply nested in Stream,
    List and Struct blocks; in document order, repeats included."""
    if is_video_chooser(block):
        video = _as_video(value)
        if video is not None:
            yield video
        return
    for _key, child_block, child_value in _child_values(block, value):
        yield from chosen_videos(child_block, child_value)


_ERROR_CLASSES = (
    (blocks.StreamBlock, blocks.StreamBlockValidationError),
    (blocks.ListBlock, blocks.ListBlockValidationError),
    (blocks.StructBlock, blocks.StructBlockValidationError),
)


def video_choice_error(block, value, refuse, message):
    """A validation error shaped like ``block`` (so the editor shows it on the
    very chooser), with ``message`` on every video for which ``refuse(video)``
    is true; None when there is none."""
    if is_video_chooser(block):
        video = _as_video(value)
        if video is not None and refuse(video):
            return ValidationError(message, code="video_not_allowed")
        return None
    errors = {}
    for key, child_block, child_value in _child_values(block, value):
        error = video_choice_error(child_block, child_value, refuse, message)
        if error is not None:
            errors[key] = error
    if not errors:
        return None
    for block_class, error_class in _ERROR_CLASSES:
        if isinstance(block, block_class):
            return error_class(block_errors=errors)
    return ValidationError(message, code="video_not_allowed")
