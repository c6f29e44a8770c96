app_name = "media_access"
urlpatterns = []
