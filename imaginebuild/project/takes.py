"""The take commands of a project: list an asset's takes, pick one, accept, adopt.

Each opens the project lock and hands the work to `engine.takedesk`; none calls a
provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from imaginebuild.engine.results import CommandResult
from imaginebuild.events import Message, MessageLevel
from imaginebuild.project.wiring import ProjectCore
from imaginebuild.store.takes import TakeBook

if TYPE_CHECKING:
    from imaginebuild.engine.takedesk import TakeDesk
    from imaginebuild.engine.takes import TakeRow


class TakeCommands(ProjectCore):
    """`takes`, `pick`, `accept` and `adopt`."""

    @property
    def takes_book(self) -> TakeBook:
        """Every take of every asset of the project, indexed in the cache folder."""
        return TakeBook.for_project(
            self.store,
            self.mediafile.lockfile_path,
            lambda text: self.reporter.emit(Message(MessageLevel.WARNING, text)),
        )

    def takes(self, name: str) -> tuple[TakeRow, ...]:
        """Every take of `name`, oldest first, with the current and the picked one marked."""
        from imaginebuild.engine.takedesk import TakeDesk

        return TakeDesk(self).listing(name)

    def pick(self, name: str, wanted: str) -> CommandResult:
        """Make one of `name`'s takes current without a call; the lockfile records the pick."""
        return self._at_the_desk(lambda desk: desk.pick(name, wanted))

    def accept(self, name: str) -> CommandResult:
        """Promote `name`'s rejected take, without a call, despite the output check."""
        return self._at_the_desk(lambda desk: desk.accept(name))

    def adopt(self, name: str) -> CommandResult:
        """Make `name`'s outputs, as retouched by hand, its current take."""
        return self._at_the_desk(lambda desk: desk.adopt(name))

    def _at_the_desk(self, work: Callable[[TakeDesk], CommandResult]) -> CommandResult:
        from imaginebuild.engine.takedesk import TakeDesk

        with self.state.exclusive(self._wait_message):
            self.state.forget_lock_entries()
            self._prune_lock(locked=False)
            result = work(TakeDesk(self))
            self.state.save_stat_cache()
        return result
