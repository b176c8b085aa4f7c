"""The price commands: the table a project estimates with, and refreshing it from xAI."""

from __future__ import annotations

from imaginebuild.engine.pricing import PriceTable
from imaginebuild.project.prices import PriceRefresh, refresh_user_prices
from imaginebuild.project.wiring import ProjectCore


class PriceCommands(ProjectCore):
    """prices and prices --refresh."""

    def prices(self) -> PriceTable:
        """The price table this project's estimates use: the built-in figures with the
        user's and then the mediafile's over them."""
        return self.estimator.table

    def refresh_prices(self) -> PriceRefresh:
        """Read xAI's published prices into the user's price file (needs XAI_API_KEY;
        two GETs, nothing billed). Later estimates of every project use them."""
        refreshed = refresh_user_prices(self.mediafile, self.env, self.state_dir)
        self.estimator.forget_table()
        return refreshed
