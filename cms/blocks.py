from django.utils.functional import cached_property
from wagtail import blocks


class VideoChooserBlock(blocks.ChooserBlock):
    """Chooses a Video with the library's chooser modal."""

    target_model = "cms.Video"

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


class VideoBlock(blocks.StructBlock):
    video = VideoChooserBlock()
    caption = blocks.CharBlock(required=False, max_length=255)

    class Meta:
        icon = "media"
        template = "cms/blocks/video_block.html"
