"""``{% video_player page video %}``: the player for one video on one page.

The library does not know who may watch: the app that decides (media_access)
registers a ``render_video_player`` hook, ``fn(context, page, video)``
returning HTML (or None to pass). The first answer wins; with no hook, a
plain notice is shown and nothing of the video is exposed."""

from django import template
from django.utils.html import format_html
from django.utils.translation import gettext as _
from wagtail import hooks

register = template.Library()


@register.simple_tag(takes_context=True)
def video_player(context, page, video):
    if video is None:
        return ""
    for fn in hooks.get_hooks("render_video_player"):
        html = fn(context, page, video)
        if html is not None:
            return html
    return format_html('<p class="video-unavailable">{}</p>', _("This video cannot be played here."))
