"""The published-text cache stays bounded in entries and in characters."""

from django.test import override_settings

from media_access import published


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


@override_settings(MEDIA_ACCESS_PUBLISHED_TEXT_CACHE_SIZE=10, MEDIA_ACCESS_PUBLISHED_TEXT_CACHE_CHARS=100)
def test_the_cache_is_bounded_in_characters():
    published.forget()
    small, small_calls = _counting("x" * 40)
    for _ in range(3):
        assert published.cached("text", "a", small) == "x" * 40
    assert len(small_calls) == 1  # kept

    big, big_calls = _counting("y" * 101)  # larger than the whole cache: never kept
    for _ in range(2):
        published.cached("text", "big", big)
    assert len(big_calls) == 2

    # Two more 40-character entries: 120 > 100, so the least recently used ("a") goes.
    for name in ("b", "c"):
        published.cached("text", name, _counting("z" * 40)[0])
    published.cached("text", "a", small)
    assert len(small_calls) == 2
    assert published._weight <= 100
    published.forget()


@override_settings(MEDIA_ACCESS_PUBLISHED_TEXT_CACHE_SIZE=2)
def test_the_cache_is_bounded_in_entries():
    published.forget()
    first, calls = _counting("a")
    published.cached("text", "1", first)
    published.cached("text", "2", _counting("b")[0])
    published.cached("text", "3", _counting("c")[0])
    published.cached("text", "1", first)
    assert len(calls) == 2 and len(published._entries) == 2
    published.forget()
