"""Stop sequences over streamed text."""

from deepseek_node.engine_server.stops import StopTracker


def test_text_without_stops_passes_through():
    tracker = StopTracker(())
    assert tracker.feed("abc") == ("abc", False)
    assert tracker.flush() == ""


def test_prefix_of_a_stop_is_held_back_until_decided():
    tracker = StopTracker(("END",))
    assert tracker.feed("hello E") == ("hello ", False)
    assert tracker.feed("N") == ("", False)
    assert tracker.feed("x") == ("ENx", False)
    assert tracker.text == "hello ENx"


def test_stop_split_over_pieces_ends_before_it():
    tracker = StopTracker(("\n\n", "###"))
    assert tracker.feed("one\n") == ("one", False)
    assert tracker.feed("\ntwo") == ("", True)
    assert tracker.text == "one"


def test_flush_releases_a_held_prefix_at_the_end():
    tracker = StopTracker(("###",))
    assert tracker.feed("a ##") == ("a ", False)
    assert tracker.flush() == "##"
    assert tracker.text == "a ##"
