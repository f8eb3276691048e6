from django.urls import path

from signups import views

urlpatterns = [
    path("signups", views.create_signup, name="signup-create"),
    path("signups/<uuid:signup_id>", views.signup_detail, name="signup-detail"),
]
