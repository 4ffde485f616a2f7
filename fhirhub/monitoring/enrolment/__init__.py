"""Who is monitored, for what, against which bounds; enrolments kept between readings."""
