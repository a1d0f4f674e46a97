"""grad_cam: the heat map points where the evidence for the class is, on a model built so
that we know where that is; and it runs on the real (tiny) ResNet50."""

import numpy as np
import tensorflow as tf

from components.trainer import model as model_lib
from pipeline import grad_cam
from tests.helpers import encode_image


def _known_model(size):
    """A 'backbone' whose last convolution passes the (preprocessed) pixels through, and a head
    whose class 0 grows with the first channel: blue, after ResNet50's BGR preprocessing."""
    image = tf.keras.Input((size, size, 3))
    identity = tf.keras.layers.Conv2D(3, 1, use_bias=False, name=grad_cam.LAST_CONV,
                                      kernel_initializer=tf.keras.initializers.Constant(np.eye(3)[None, None]))(image)
    backbone = tf.keras.Model(image, tf.keras.layers.GlobalAveragePooling2D()(identity), name="resnet50")
    head = tf.keras.layers.Dense(2, activation="softmax", name=grad_cam.HEAD)
    outer = tf.keras.Input((size, size, 3))
    model = tf.keras.Model(outer, head(backbone(model_lib.preprocess(outer))))
    head.set_weights([np.array([[0.05, -0.05], [0.0, 0.0], [0.0, 0.0]], np.float32), np.zeros(2, np.float32)])
    return model, backbone


def test_the_map_lights_up_where_the_class_evidence_is():
    size = 32
    model, backbone = _known_model(size)
    images = np.zeros((1, size, size, 3), np.float32)
    images[0, 4:12, 20:28, 2] = 255.0  # a blue square, top right
    heat = grad_cam.GradCam(model, backbone, size).maps(images, [0])[0]

    assert heat.shape == (size, size) and heat.min() >= 0.0 and heat.max() == np.float32(1.0)
    inside = heat[5:11, 21:27]
    outside = np.ones_like(heat, bool)
    outside[2:14, 18:30] = False
    assert inside.min() > 0.9 and heat[outside].max() < 0.05


def test_maps_of_the_real_model_on_encoded_images(tiny_model):
    model = tiny_model.keras_model
    explainer = grad_cam.GradCam(model, model.get_layer(model_lib.BACKBONE_NAME), 32)
    images = explainer.images([encode_image((200, 30, 30)), encode_image((30, 30, 200), image_format="PNG")])
    assert images.shape == (2, 32, 32, 3) and images.max() <= 255.0
    heat = explainer.maps(images, [0, 2])
    assert heat.shape == (2, 32, 32) and np.all((heat >= 0) & (heat <= 1))
    picture = grad_cam.overlay(images[0], heat[0])
    assert picture.shape == (32, 32, 3) and picture.dtype == np.uint8
