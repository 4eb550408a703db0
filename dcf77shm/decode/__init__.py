"""The pure middle: edges -> carrier transitions -> second marks -> frames -> lock -> samples."""
