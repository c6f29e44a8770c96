"""The video chooser modal (search, pick, or upload in its second tab)."""

from wagtail.admin.viewsets.chooser import ChooserViewSet

from ..forms import VideoForm


class VideoChooserViewSet(ChooserViewSet):
    model = "cms.Video"
    icon = "media"
    choose_one_text = "Choose a video"
    choose_another_text = "Choose another video"
    edit_item_text = "Edit this video"
    create_action_label = "Upload"
    creation_tab_label = "Upload"
    creation_form_class = VideoForm
    url_filter_parameters = ["collection_id"]
    per_page = 12


video_chooser_viewset = VideoChooserViewSet("cms_video_chooser", url_prefix="videos/chooser")
