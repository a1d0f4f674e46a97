"""The memory at hand: the machine's free memory, or a container limit's headroom."""

from components.trainer import memory


def test_a_container_limit_leaves_its_headroom(tmp_path):
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(f"{2 << 30}\n")
    usage.write_text(f"{(1 << 30) + 5}\n")
    assert memory.container_headroom([(str(limit), str(usage))]) == (1 << 30) - 5


def test_no_limit_or_no_cgroup_files_mean_no_headroom_of_their_own(tmp_path):
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text("max\n")
    usage.write_text("12345\n")
    assert memory.container_headroom([(str(limit), str(usage))]) is None
    assert memory.container_headroom([(str(tmp_path / "missing"), str(usage))]) is None
    # cgroup v1 says "no limit" with a number larger than the machine's memory.
    limit.write_text(f"{1 << 62}\n")
    assert memory.container_headroom([(str(limit), str(usage))]) is None


def test_the_memory_at_hand_is_positive():
    assert memory.available_bytes() > 0
