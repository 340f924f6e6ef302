"""Small set-based queries shared by the apps."""

from django.db import connection, models


def any_with(model: type[models.Model], column: str, ids: list[int]) -> bool:
    """Whether a row of `model` has `column` in `ids`, with the ids bound as one array (`= ANY`).

    `filter(column__in=ids)` binds one parameter per id; for a fan-out chunk's 5,000 devices the server spent
    ~0.2 s parsing and planning that list, against a few milliseconds for the array.
    """
    if not ids:
        return False
    field = model._meta.get_field(column)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT EXISTS (SELECT 1 FROM "{model._meta.db_table}" WHERE "{field.column}" = ANY(%s))',
            [list(ids)],
        )
        return bool(cursor.fetchone()[0])
