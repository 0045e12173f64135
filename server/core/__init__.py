"""The bottom layer: concepts every other part of Lightbulb shares.

Statuses and their severity order, log levels, durations and sizes, secrets,
service selectors and the clock each have their one home here. Modules in this
package import only the standard library and third-party packages, never
another part of Lightbulb, so anything (checkers, channels, config, web) may
import them without creating a cycle. ``tests/test_layers.py`` enforces that.
"""
