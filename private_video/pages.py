"""The page contract: which videos a page holds.

A page type that shows videos mixes in ``VideoPageMixin``::

    from private_video.pages import VideoPageMixin

    class LessonPage(VideoPageMixin, Page):
        video = models.ForeignKey(get_video_model_string(), null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
        body = StreamField([("video", VideoBlock()), ...])

``videos()`` then lists every video the page holds: foreign keys and
many-to-many fields to the video model, every video chooser at any depth of
any StreamField, and the same in its inline children. That one answer is what
media_access lets viewers watch on the page, what the page editor checks
"choose" permission on, and what a copy of the page takes along. The mixin
also sets the page form (``VideoChoicePageForm``) that checks those choices.
"""

from django.utils.cache import patch_cache_control

from .page_forms import VideoChoicePageForm, video_ids_held_by


class VideoPageMixin:
    base_form_class = VideoChoicePageForm

    #: The field holding the page's main video, if any. media_access answers
    #: "is this video on the page" for it with one indexed query.
    main_video_field = "video"

    def serve(self, request, *args, **kwargs):
        # What the page shows depends on who asks: the player's state and
        # sources, a download link, the transcript of a private video. No
        # shared cache may keep it (a CDN that ignores Vary: Cookie would
        # hand one viewer's page to the next visitor).
        response = super().serve(request, *args, **kwargs)
        patch_cache_control(response, private=True, no_store=True)
        return response

    def video_ids(self):
        """Ids of the videos this page holds, in field and document order, once each."""
        return video_ids_held_by(self)

    def videos(self):
        """The videos this page holds, in field and document order, once each."""
        from . import get_video_model

        ids = self.video_ids()
        found = get_video_model().objects.in_bulk(ids)
        return [found[pk] for pk in ids if pk in found]


def holds_videos(page):
    """The page (a specific instance) follows the page contract."""
    return isinstance(page, VideoPageMixin)
