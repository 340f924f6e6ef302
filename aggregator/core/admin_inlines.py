from django.contrib import admin


class ReadOnlyInline(admin.TabularInline):
    """A history or membership table shown on its parent's page: nothing is added,
    edited or deleted here (those go through the services)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False
