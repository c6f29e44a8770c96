"""The demo site's page types. The video library, transcoding and media_access
know nothing of them: a page offers its videos through VideoPageMixin."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, InlinePanel, ObjectList, TabbedInterface
from wagtail.blocks import RichTextBlock
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page

from private_video import get_video_model_string
from private_video.blocks import VideoBlock
from private_video.pages import VideoPageMixin


class VideoPage(VideoPageMixin, Page):
    """A page with one main video and a body that can hold more."""

    video = models.ForeignKey(
        get_video_model_string(),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("main video"),
    )
    intro = RichTextField(blank=True, verbose_name=_("intro"))
    body = StreamField(
        [
            ("video", VideoBlock()),
            ("text", RichTextBlock()),
        ],
        blank=True,
        use_json_field=True,
        verbose_name=_("body"),
    )

    content_panels = Page.content_panels + [
        FieldPanel("video"),
        FieldPanel("intro"),
        FieldPanel("body"),
    ]
    # Who may watch this page's videos (media_access); empty means anyone who passes page privacy.
    viewer_panels = [
        InlinePanel(
            "viewer_grants",
            heading=_("Viewers"),
            label=_("Viewer"),
            help_text=_(
                "Once a page has viewers, only these users and groups may watch its videos. "
                "Changes apply when the page is published."
            ),
        ),
    ]
    edit_handler = TabbedInterface(
        [
            ObjectList(content_panels, heading=_("Content")),
            ObjectList(Page.promote_panels, heading=_("Promote")),
            ObjectList(Page.settings_panels, heading=_("Settings")),
            ObjectList(viewer_panels, heading=_("Viewers")),
        ]
    )

    template = "cms/video_page.html"
    # VideoPageMixin: videos() lists the main video, then the body's, once
    # each, and the page form checks "choose" permission on every one of them.

    class Meta:
        verbose_name = _("video page")
        verbose_name_plural = _("video pages")


class IndexPage(Page):
    """A plain page that lists its children; the site's home page."""

    intro = RichTextField(blank=True, verbose_name=_("intro"))
    content_panels = Page.content_panels + [FieldPanel("intro")]
    template = "cms/index_page.html"

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["children"] = self.listed_children(request)
        return context

    def listed_children(self, request):
        """The live children this visitor may open, or open by signing in: a
        page whose privacy asks for a group the visitor is not in, or a
        password they have not given, is not listed (nor its title shown),
        and neither is one past its expiry. A sign-in-only page is listed
        to anonymous visitors, as an invitation to sign in."""
        now = timezone.now()
        signed_in = request.user.is_authenticated

        def lets_in(restriction):
            return restriction.accept_request(request) or (
                restriction.restriction_type == restriction.LOGIN and not signed_in
            )

        return [
            child for child in self.get_children().live().specific()
            if (child.expire_at is None or child.expire_at > now)
            and all(lets_in(restriction) for restriction in child.get_view_restrictions())
        ]

    class Meta:
        verbose_name = _("index page")
        verbose_name_plural = _("index pages")
