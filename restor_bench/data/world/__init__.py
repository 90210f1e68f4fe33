"""data.world"""
